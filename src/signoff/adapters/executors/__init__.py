"""Executors: Signoff performs an approved action itself, so the credential for the
target never reaches the requester. One module per kind; targets are declared in the
targets file (see ``adapters/targets_file.py``)."""
