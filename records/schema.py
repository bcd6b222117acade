"""Facts about the tuning log's layout that readers need without SQLAlchemy: schema version, default path."""

SCHEMA_VERSION = 1  # bump with a migration in records.migrate
ENV_VAR = "TUNEBIRD_DB"  # the database used when none is given
DEFAULT_PATH = "tunebird.db"
IN_DATABASE = "db"  # an artifact's location when its payload is stored inside the database
