"""oddwatch."""
