"""Progress state kept in the read-model database, written in each batch's transaction."""
