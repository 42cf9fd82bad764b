"""Errors a user can fix. The CLI prints them as one line and exits with status 2."""


class UsageError(Exception):
    """Bad input the user can fix: names the file, the key, what is wrong and how to fix it."""

    def __init__(self, file, key, problem, fix=""):
        self.file, self.key, self.problem, self.fix = str(file), key, problem, fix
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + problem + (f" ({fix})" if fix else ""))


class DataMissing(UsageError):
    """A dataset is not on this machine; the message says exactly how to get it."""
