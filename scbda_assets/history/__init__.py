"""Hot + cold unified OLAP: daily history per region over the archive and MongoDB together."""
