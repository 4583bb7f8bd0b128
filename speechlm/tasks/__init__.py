"""End-user tasks built on the generators: zero-shot TTS (:mod:`.tts`) and speech editing (:mod:`.edit`)."""
