"""Raw claims layouts: declarative mapping files and the mapper that applies them."""
