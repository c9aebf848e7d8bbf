"""The application wing: command line, experiment runs, run reports, plots, presets, spec
strings, introspection, export and the local web page. Built on the library below it; nothing
below imports it."""
