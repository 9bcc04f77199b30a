using Google.Protobuf;
using Onnx;

namespace Async.Serving.Benchmark;

/// <summary>
/// A model that costs next to nothing, so end-to-end throughput measures the orchestration:
/// input <c>image</c> [N,3,8,8] → GlobalAveragePool → Flatten → output <c>embedding</c> [N,3].
/// </summary>
internal static class TrivialModel
{
    public const string InputName = "image";
    public const string OutputName = "embedding";

    public static void Write(string path)
    {
        var graph = new GraphProto { Name = "bench_trivial" };
        graph.Input.Add(Tensor(InputName, Dim("N"), Dim(3), Dim(8), Dim(8)));
        graph.Output.Add(Tensor(OutputName, Dim("N"), Dim(3)));
        graph.Node.Add(new NodeProto { Name = "pool", OpType = "GlobalAveragePool", Input = { InputName }, Output = { "pooled" } });
        var flatten = new NodeProto { Name = "flatten", OpType = "Flatten", Input = { "pooled" }, Output = { OutputName } };
        flatten.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        graph.Node.Add(flatten);

        var model = new ModelProto
        {
            IrVersion = 7,
            ProducerName = "Async.Serving.Benchmark",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = 13 });

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var stream = File.Create(path);
        model.WriteTo(stream);
    }

    private static TensorShapeProto.Types.Dimension Dim(long value) => new() { DimValue = value };

    private static TensorShapeProto.Types.Dimension Dim(string param) => new() { DimParam = param };

    private static ValueInfoProto Tensor(string name, params TensorShapeProto.Types.Dimension[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(dims);
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
