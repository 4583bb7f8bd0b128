"""Responsible generation: signed provenance of generated audio (:mod:`speechlm.safety.provenance`)."""
