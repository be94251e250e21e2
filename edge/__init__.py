"""envpatrol edge: the agent that runs on a patrol vehicle, and the wire contract it speaks.

Everything in this package installs and runs with the vehicle's small dependency set (pyserial,
pynmea2, paho-mqtt); nothing here may import a server dependency.
"""

__version__ = "0.1.0"
