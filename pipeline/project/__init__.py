"""`wavepipe init DIR`: a new project from the template beside this module."""
