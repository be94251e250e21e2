"""envpatrol demo: the whole system on one machine, with embedded broker and database."""
