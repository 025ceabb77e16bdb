"""The ``notifications`` projection: an e-mail per fulfilled order, exactly once in effect.

* ``projection``: records each e-mail in the batch transaction;
* ``delivery``: claims, sends and marks recorded e-mails after the commit;
* ``mail``: the mailer protocol and its SMTP implementation;
* ``template``: the message itself (text and HTML).
"""
