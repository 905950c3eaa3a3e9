"""The one error type the CLI turns into a single line on stderr and an exit code."""


class SluiceError(Exception):
    """An error an operator can act on: its message is the whole story, no traceback.

    exit_code follows the appliance's convention: 2 for bad input (flag, config, interface,
    permissions), 1 for a check that found something wrong.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
