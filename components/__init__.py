"""The stack: one ComponentResource per service, a platform that runs them, rendered files."""
