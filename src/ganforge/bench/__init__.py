"""Speed measurement: the classic reference loop (`classic`) and `ganforge bench` (`measure`)."""
