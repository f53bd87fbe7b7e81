"""Static files of the watch-floor console (a package so they ship in the wheel)."""
