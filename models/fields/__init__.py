"""Key fields of a bill (company, date, address, total) from its recognised lines."""
