"""The portal: the public read side of Buurtkracht, served from a read model of its own that the events build."""
