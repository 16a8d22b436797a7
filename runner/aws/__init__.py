"""Everything that talks to AWS, one module per service, behind one cached client factory."""
