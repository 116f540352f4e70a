"""MDM's calculation library: bill determinants from measurements (TOU, registers, estimation,
high/low checks, usage groups); it imports nothing of the store, the engine or the simulators."""
