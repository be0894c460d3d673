"""Your pipeline's own functions, shipped to every job with wavepipe's code bundle (`code.paths` in
wavepipe.yaml). Each module holds one function the config names as `module:function`; the contract
of each (arguments, return value, where it runs, what it may read and write) is in README.md."""
