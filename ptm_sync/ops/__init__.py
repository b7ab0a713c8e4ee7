"""Operations: metrics, redaction, failures as sentences, crash points, HTTP pacing."""
