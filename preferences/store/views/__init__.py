"""The pages under /store/: ``access`` (the staff login, the idle timeout, what every page shares),
``tablet`` (the staff home, customer mode, the thank-you), ``purchase``, ``phone`` and
``management`` (tablets, staff accounts, passwords)."""
