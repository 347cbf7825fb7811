"""Delta lakehouse storage and the Spark session."""
