"""Where this project looks for files it does not make itself (imports nothing heavy)."""

#: environment variable naming a folder of dataset archives and ``weights/`` (offline machines)
ARCHIVES_ENV = "DLA_DATA_ARCHIVES"
