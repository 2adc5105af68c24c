"""Low-level network engines shared by several probe kinds."""
