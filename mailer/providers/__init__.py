"""The sending services: one package each, declaring its settings, backend and webhook."""
