"""The SpeechLM: unit vocabularies, warm/cold start from text LMs, loading, scoring, generation."""
