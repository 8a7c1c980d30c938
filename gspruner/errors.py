"""The one exception type for bad user input.

Anything the user can fix (a missing folder, an unreadable image, an unknown camera model, a corrupt
file) raises `InputError` with a one-line message naming the file and the problem. The CLI prints it
and exits with code 2; nothing is written before the input has been validated.
"""


class InputError(Exception):
    """Bad user input: the CLI prints `error: <message>` and exits with code 2."""
