"""The isolation check catalog: one module per area; see base.py for the contract."""
