"""Running the landing session, reading its JUnit back, and the verdict lines."""
