"""MDM's calculation library: bill determinants from measurements (TOU, registers, estimation,
high/low checks, usage groups); it knows nothing of stores or messages."""
