"""The base error every layer raises, so the CLI and HTTP layers can turn it into a clear message.

`exit_code` follows restic's convention where one exists: 1 for a fatal error,
3 for a backup that finished but could not read some files, 10 for a missing
repository, 12 for a wrong passphrase.
"""


class VaultwatchError(Exception):
    """An expected failure with a message meant for the person at the keyboard."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
