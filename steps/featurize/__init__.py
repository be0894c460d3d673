"""Featurize stage: every WFDB record of one macroshard summarised, microsharded over the vCPUs.

`discovery` finds records from their headers, `summary` is the built-in feature function (over
`reader`'s exact histograms), `run` plans microshards and writes the outputs, `__main__` is
the thin entry."""
