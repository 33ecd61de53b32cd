"""Mutation testing: deliberate breakages that the tests must catch (`make mutants`)."""
