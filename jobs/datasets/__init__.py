"""Data makers: landing files from public datasets (import_dataset), a small demo landing zone with
generated clips (make_demo_data) and a platform-sized one for the load benchmark (make_load_data)."""
