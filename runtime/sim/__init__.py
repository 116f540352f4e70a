"""The reference simulators of CCB (``ccb``) and MDM (``mdm``, with its calculation library
``determinants``): how every flow runs end to end without the real systems, and what the demo
runs. The two systems share nothing but messages; what joins them (the synthetic utility, the
demo, navigation links and pages) lives here."""
