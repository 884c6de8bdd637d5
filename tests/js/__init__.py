"""The browser client's tests: ``*.test.mjs`` under Node's test runner, run by :mod:`.test_js`."""
