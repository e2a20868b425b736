"""The audit log: who changed what, when and from where (never a secret's value).

Services record a change with :func:`record` in the transaction that makes it; who is
acting comes from :data:`current_actor`, which the REST dependency, the web login and
the CLI set (library use is ``Actor(kind="library")``).
"""
