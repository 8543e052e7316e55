import ArgumentParser
@main struct Waybill: ParsableCommand {}
