"""The built-in sample corpus: made on the machine, never downloaded."""
