"""Entry point for ``python -m dlqctl``."""

from dlqctl.cli.app import main

if __name__ == "__main__":
    main()
