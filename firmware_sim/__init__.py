"""envpatrol firmware_sim: a box and a GPS receiver that speak the real protocols over
pseudo-terminals, driving a patrol vehicle through a synthetic pollution field.

Depends only on `edge` (the shared codecs) and the standard library, so it runs wherever the edge
agent does.
"""
