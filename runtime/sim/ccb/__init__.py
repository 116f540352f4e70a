"""The reference CCB: master data with change capture, billing, corrected reads, and the calls
CCB makes; it shares nothing with the reference MDM but messages."""
