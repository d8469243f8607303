// Nothing to call: the module exists for the constructor in TestWidth.c (see there).
