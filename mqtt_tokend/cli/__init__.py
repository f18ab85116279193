"""The command line: a table of commands and what each one does."""
