"""Everything mailer keeps in its database, and the only SQL in mailer.

Importing the package loads nothing: the CSV reader process (importing/reader.py) stays small.
"""
