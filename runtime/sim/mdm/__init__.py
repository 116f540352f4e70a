"""The reference MDM: master data applied from sync messages, measurements, usage transactions,
answers to read-only calls, corrections and ESPI import; it shares nothing with the reference
CCB but messages."""
