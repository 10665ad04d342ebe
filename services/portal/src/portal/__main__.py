"""`python -m portal`: run the portal until SIGTERM."""

from buurtkracht_kit.runtime import serve

from .app import create


def main() -> None:
    serve(create())


if __name__ == "__main__":
    main()
