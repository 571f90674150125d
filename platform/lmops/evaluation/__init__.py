"""The standard evaluation every model gets, so versions can be compared."""
