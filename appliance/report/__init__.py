"""`sluice report`: an HTML page of a capture window with plots."""
