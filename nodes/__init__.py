"""focusgraph's built-in node types, one module each, registered through entry points."""
