"""The morning after a night: what the station tells its observer.

- :mod:`.summary` - the night in words (text, HTML, JSON) from the ledger and the outbox
- :mod:`.lightcurve` - the night's light curve as a plot
- :mod:`.sonify` - the night as sound
- :mod:`.web` - an accessible local page over the three

Nothing here writes to the ledger; every module reads the store and the outbox.
Nothing is imported here, so that ``starnode summary`` does not pay for the web server.
"""
