"""The Streamlit shell over the analysis library (see dashboard/app.py)."""
